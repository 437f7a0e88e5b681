"""MLflow: the store, runs and their logging, the prompt registry, logged programs, prompt diffs and
where a compiled program comes from. Secrets are scrubbed here before anything reaches MLflow. Imports
runs/ (for what a run wrote) and below; never cli/.
"""
