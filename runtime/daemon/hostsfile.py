"""placeholder"""
def refresh(daemon, c):
    pass
