"""sr-desk: a desktop image editor for diffusion super-resolution."""

__version__ = "0.1.0"
