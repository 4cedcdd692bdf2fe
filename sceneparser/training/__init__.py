"""sceneparser.training"""
