"""The stages around the sampler: conditioning (CLIP, face tokens, reference latent, skeletons), VAE decoding,
and :mod:`.animate`, which chains conditioning -> sampling -> decoding for the CLI and the parity replay."""
