"""sceneparser.data"""
