//! What is where: stages, repositories, tags, channels and their history, and an artifact's status across stages.
