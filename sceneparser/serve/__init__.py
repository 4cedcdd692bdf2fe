"""sceneparser.serve"""
