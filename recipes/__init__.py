"""Recipes: the ProST paper's training and registration assembled from xrender's modules."""
