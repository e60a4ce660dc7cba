namespace HybridServing.AppHost.Tests;

/// <summary>k8s/monitoring renders and covers what an operator watches; the end-to-end test checks its metrics exist.</summary>
public sealed class MonitoringTests
{
    [Fact]
    public void The_overlay_renders_the_dashboard_ConfigMap_and_the_alert_rules()
    {
        var rendered = MonitoringMetrics.RenderOverlay();
        Assert.Contains("kind: PrometheusRule", rendered);
        Assert.Contains("name: hybridserving-dashboard", rendered);
        Assert.Contains("grafana_dashboard: \"1\"", rendered);
    }

    [Fact]
    public void Every_panel_and_alert_queries_at_least_one_HybridServing_or_vLLM_metric()
    {
        var expressions = MonitoringMetrics.Expressions();
        Assert.True(expressions.Count >= 20, $"only {expressions.Count} expressions found");
        foreach (var (where, expr) in expressions)
            Assert.True(MonitoringMetrics.NamesIn(expr).Any(), $"{where}: '{expr}' names no metric");
        var names = expressions.SelectMany(e => MonitoringMetrics.NamesIn(e.Expr)).ToHashSet();
        // What the issue asks the dashboards to show, by the metric that shows it.
        foreach (var needed in new[]
                 {
                     "hybridserving_gateway_requests", "hybridserving_gateway_ttft_bucket", "vllm:inter_token_latency_seconds_bucket",
                     "hybridserving_sidecar_adapter_state", "hybridserving_sidecar_adapter_load_duration_seconds_count",
                     "hybridserving_gateway_cold_starts", "vllm:kv_cache_usage_perc", "hybridserving_autoscaler_desired_engines",
                     "hybridserving_sidecar_engine_healthy",
                 })
            Assert.Contains(needed, names);
    }

    [Fact]
    public void Label_values_and_functions_are_not_taken_for_metric_names()
    {
        Assert.Equal(["hybridserving_gateway_requests"],
            MonitoringMetrics.NamesIn("sum(rate(hybridserving_gateway_requests{status=~\"5..\",adapter=\"vllm:x\"}[5m]))"));
        Assert.Equal(["a_total", "hybridserving_x_bucket"],
            MonitoringMetrics.SampleNames("# HELP a_total x\na_total 1\nhybridserving_x_bucket{le=\"1\"} 2\n"));
    }
}
