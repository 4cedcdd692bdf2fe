"""sceneparser.commands"""
