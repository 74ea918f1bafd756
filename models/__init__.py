"""Every network of the seed reports, as minidl.nn.Module classes."""
