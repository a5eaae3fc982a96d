"""cprcoach: turn CPR-Coach videos into training-ready data and train ImagineNet on it."""

__version__ = "0.1.0"
