"""sceneparser.evaluation"""
