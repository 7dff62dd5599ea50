"""Loading: where the weights live (layout), safe strict checkpoint loading, building each network from its
configuration, the loaded-model bundle, the weights download and the onnxruntime sessions."""
