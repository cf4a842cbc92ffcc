"""The STDCGE model (Hosoe, Gasawa & Hashimoto 2010, ch. 6), its SAM, and CGE stress scenarios."""
