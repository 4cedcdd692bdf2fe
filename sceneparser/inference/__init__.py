"""sceneparser.inference"""
