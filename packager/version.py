"""The aotc version recorded in every manifest's producer field."""

AOTC_VERSION = "0.1.0"
