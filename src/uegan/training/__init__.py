"""Training UEGAN on unpaired photo collections."""
