-- The columns the pair_attributes suite validates: the table's own plus completeness flags.
select
    pair_id,
    model,
    prompt_version,
    status,
    task_category,
    objectivity,
    controversiality,
    error,
    len(desired_attributes) as desired_attribute_count,
    status = 'ok' and (task_category is null or objectivity is null or controversiality is null
                       or coalesce(trim(annotation_guideline), '') = '' or desired_attributes is null)
        as ok_but_incomplete,
    status = 'failed' and error is null as failed_without_reason
from pair_attributes
