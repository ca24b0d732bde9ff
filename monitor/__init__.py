"""monitor: keeps TensorFlow models in production transparent and trustworthy.

Importing the package is cheap on purpose: TensorFlow, Evidently and the HTTP stack
are imported only by the modules that need them.
"""

__version__ = "0.1.0"
