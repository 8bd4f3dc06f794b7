"""Reading and writing files: atomic writes, finding images, decoding and encoding photos."""
