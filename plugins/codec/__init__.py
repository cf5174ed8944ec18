"""SoundStream codec stage plugin (``soundstream``): SEANet encoder/decoder, residual VQ, GAN training."""
