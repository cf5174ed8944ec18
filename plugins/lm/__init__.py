"""Language-model stages (AudioLM stages 1-3): semantic, coarse and fine acoustic LMs over one transformer."""
