"""Seed scenario: a research assistant that asks Toolbridge's `fin_sentiment` tool about each news note it
retrieves, then summarises what moved the stock. Run ``python -m examples.research_assistant --help``."""

from examples.research_assistant.agent import Finding, ResearchAssistant, ResearchReport
from examples.research_assistant.notes_store import NOTES_DIR, Note, NoteRetriever, load_notes

__all__ = ["NOTES_DIR", "Finding", "Note", "NoteRetriever", "ResearchAssistant", "ResearchReport",
           "load_notes"]
