"""aiapi's upstream simulator: a deterministic, Anthropic-compatible Messages API server."""

from aiapi_simulator.app import Simulator, create_app
from aiapi_simulator.config import ModelInfo, SimulatorConfig

__all__ = ["ModelInfo", "Simulator", "SimulatorConfig", "create_app"]
