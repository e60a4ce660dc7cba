using System.Diagnostics;
using System.Text;

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
    public async Task Prometheus_accepts_every_alert_and_every_panel_query()
    {
        // promtool (Debian package prometheus, installed by tests/run) parses the PrometheusRule's groups as a rules
        // file, and each panel's query as a recording rule: a PromQL syntax error fails here, not on a cluster.
        using var dir = new HybridServing.TestKit.TempDirectory("monitoring");
        var rules = File.ReadAllLines(Path.Combine(MonitoringMetrics.Folder, "prometheus-rules.yaml"));
        var spec = Array.FindIndex(rules, l => l == "spec:");
        Assert.True(spec > 0, "prometheus-rules.yaml has no top-level spec:");
        var alerts = dir.Combine("alerts.yaml");
        await File.WriteAllLinesAsync(alerts, rules.Skip(spec + 1).Select(l => l.Length >= 2 ? l[2..] : l));
        var panels = new StringBuilder("groups:\n  - name: panels\n    rules:\n");
        var i = 0;
        foreach (var (_, expr) in MonitoringMetrics.Expressions().Where(e => e.Where.StartsWith("panel", StringComparison.Ordinal)))
            panels.Append($"      - record: panel:query_{i++}\n        expr: '{expr.Replace("'", "''")}'\n");
        var recorded = dir.Combine("panels.yaml");
        await File.WriteAllTextAsync(recorded, panels.ToString());

        var (code, output) = await RunAsync("promtool", "check", "rules", alerts, recorded);
        Assert.True(code == 0, $"promtool check rules failed:\n{output}");
        Assert.Contains("SUCCESS: 7 rules found", output);
        Assert.Contains($"SUCCESS: {i} rules found", output);
    }

    private static async Task<(int Code, string Output)> RunAsync(string file, params string[] args)
    {
        Process process;
        try
        {
            process = Process.Start(new ProcessStartInfo(file, args) { RedirectStandardOutput = true, RedirectStandardError = true })!;
        }
        catch (System.ComponentModel.Win32Exception e)
        {
            throw new InvalidOperationException($"{file} is not installed ({e.Message}): run the tests with tests/run, which installs the Debian package prometheus", e);
        }
        using (process)
        {
            var stdout = process.StandardOutput.ReadToEndAsync();
            var stderr = await process.StandardError.ReadToEndAsync();
            await process.WaitForExitAsync();
            return (process.ExitCode, await stdout + stderr);
        }
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
