"""Teachers, students and distillation.  Not built yet: see the open issues."""
