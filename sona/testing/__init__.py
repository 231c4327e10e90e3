"""Test helpers shipped with the package: fixtures, the model contract, strategies."""
