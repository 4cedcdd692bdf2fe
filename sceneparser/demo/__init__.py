"""sceneparser.demo"""
