"""The simulator: executes `.axmodel` files (command streams and parameter blobs) with numpy."""
