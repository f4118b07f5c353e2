"""`obsctl check`: does the watched platform give obsctl what it needs?"""
