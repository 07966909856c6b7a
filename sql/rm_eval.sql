-- rm_eval: a reward model's accuracy, mean margin and calibration on its evaluation pairs, overall and by
-- each breakdown (source, task category... or a pairs file's column), plus the reliability bins (confidence_bin).
-- Reads eval_scores(breakdown, group_value, reward_chosen, reward_rejected, p_chosen): every pair once with
-- breakdown 'overall' (group 'all') and once per other breakdown (rm_eval.register_eval_scores).
with scored as (
    select
        breakdown,
        group_value,
        reward_chosen - reward_rejected as margin,
        p_chosen,
        greatest(p_chosen, 1 - p_chosen) as confidence,
        -- right when the model gives the chosen (human-preferred) response p > 0.5; a tie (0.5) is wrong,
        -- as Stage 1 counts it (p <= 0.5: the RM was wrong)
        (p_chosen > 0.5)::int as correct,
        -- calibrated: the side the model prefers is right as often as its confidence says (5 bins over [0.5, 1])
        least(floor((greatest(p_chosen, 1 - p_chosen) - 0.5) * 10), 4)::int as bin
    from eval_scores
),
binned as (
    select
        breakdown,
        group_value,
        bin,
        count(*) as n,
        sum(correct) as correct,
        sum(confidence) as confidence,
        sum(margin) as margin,
        sum(p_chosen) as p_chosen,
        sum((1 - p_chosen) ^ 2) as squared_error
    from scored
    group by breakdown, group_value, bin
),
groups as (
    select
        breakdown,
        group_value,
        sum(n)::bigint as pairs,
        sum(correct) / sum(n) as accuracy,
        sum(margin) / sum(n) as mean_margin,
        sum(p_chosen) / sum(n) as mean_p_chosen,
        sum(confidence) / sum(n) as mean_confidence,
        sum(squared_error) / sum(n) as brier,
        -- ECE: the bins' |accuracy - confidence| weighted by their share of pairs
        sum(abs(correct - confidence)) / sum(n) as ece
    from binned
    group by breakdown, group_value
),
reliability as (
    select
        'confidence_bin' as breakdown,
        printf('%.1f-%.1f', 0.5 + bin / 10, 0.6 + bin / 10) as group_value,
        n::bigint as pairs,
        correct / n as accuracy,
        margin / n as mean_margin,
        p_chosen / n as mean_p_chosen,
        confidence / n as mean_confidence,
        squared_error / n as brier,
        abs(correct - confidence) / n as ece
    from binned
    where breakdown = 'overall'
)
select * from groups
union all
select * from reliability
order by breakdown, group_value
