"""The host runtime of a built directory: the board's tokenizer protocols, sampling as the
board runtime applies `post_config.json`, and the chat engine behind `axc-chat` and
`axc-serve` (all over the simulator running the emitted `.axmodel` files)."""
