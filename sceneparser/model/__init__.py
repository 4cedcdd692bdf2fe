"""sceneparser.model"""
