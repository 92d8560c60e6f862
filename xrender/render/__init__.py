"""Rendering: DRRs by the Projective Spatial Transformer (rays through a moving volume, sampled and summed)."""
