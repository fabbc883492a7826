"""The study's configuration: its file, the job's declared parameters, sizing and shell words."""
