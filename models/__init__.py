"""SL-GT2Net: the sparse local-global temporal transformer network for SAR time-series segmentation."""
