"""Write the 57 ``reka_mmlu_<subject>.yaml`` task files and the ``reka_mmlu`` group.

Run from anywhere: ``python eval/tasks/mmlu/generate.py``. The files it writes
are committed; rerun it only when the template's shape changes. Each subject
task includes ``../_reka_mmlu_template_yaml`` and adds its data files and
lm-eval's usual MMLU description line ("The following are multiple choice
questions (with answers) about <subject>."). The group averages accuracy over
all 14042 questions (weighted by subject size, as lm-eval's mmlu does).
"""

import os

SUBJECTS = """
abstract_algebra anatomy astronomy business_ethics clinical_knowledge
college_biology college_chemistry college_computer_science college_mathematics
college_medicine college_physics computer_security conceptual_physics
econometrics electrical_engineering elementary_mathematics formal_logic
global_facts high_school_biology high_school_chemistry
high_school_computer_science high_school_european_history
high_school_geography high_school_government_and_politics
high_school_macroeconomics high_school_mathematics high_school_microeconomics
high_school_physics high_school_psychology high_school_statistics
high_school_us_history high_school_world_history human_aging human_sexuality
international_law jurisprudence logical_fallacies machine_learning management
marketing medical_genetics miscellaneous moral_disputes moral_scenarios
nutrition philosophy prehistory professional_accounting professional_law
professional_medicine professional_psychology public_relations
security_studies sociology us_foreign_policy virology world_religions
""".split()

GROUP = """\
# MMLU (57 subjects, test split): accuracy over all questions, each subject
# weighted by its size. Written by generate.py.
group: reka_mmlu
task:
  - reka_mmlu_tasks
aggregate_metric_list:
  - metric: acc
    weight_by_size: true
metadata:
  version: 1.0
"""

TASK = """\
# Written by generate.py.
include: ../_reka_mmlu_template_yaml
task: reka_mmlu_{subject}
task_alias: {subject}
tag: reka_mmlu_tasks
description: "The following are multiple choice questions (with answers) about {words}.\\n\\n"
dataset_kwargs:
  data_files:
    test: mmlu/{subject}/test.jsonl
    dev: mmlu/{subject}/dev.jsonl
"""


def main() -> None:
    here = os.path.dirname(os.path.abspath(__file__))
    assert len(SUBJECTS) == 57, len(SUBJECTS)
    with open(os.path.join(here, "_reka_mmlu.yaml"), "w") as fh:
        fh.write(GROUP)
    for subject in SUBJECTS:
        text = TASK.format(subject=subject, words=subject.replace("_", " "))
        with open(os.path.join(here, f"reka_mmlu_{subject}.yaml"), "w") as fh:
            fh.write(text)


if __name__ == "__main__":
    main()
