"""Development tools (documentation generators); not part of the package or the image."""
