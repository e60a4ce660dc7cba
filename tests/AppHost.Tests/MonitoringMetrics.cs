using System.Diagnostics;
using System.Text.Json.Nodes;
using System.Text.RegularExpressions;

namespace HybridServing.AppHost.Tests;

/// <summary>
/// The metric names the Grafana dashboard and the PrometheusRule alerts in <c>k8s/monitoring</c> query, and the
/// sample names a component's <c>/metrics</c> answer exports, so a test can check that the first are all among the
/// second: a renamed or removed metric fails CI instead of leaving an empty panel or an alert that never fires.
/// </summary>
internal static partial class MonitoringMetrics
{
    public static string Folder => Path.Combine(Repository.Root, "k8s", "monitoring");

    /// <summary>Every PromQL expression of the dashboard's panels and the rules' alerts, with where it comes from.</summary>
    public static IReadOnlyList<(string Where, string Expr)> Expressions()
    {
        var found = new List<(string, string)>();
        var dashboard = JsonNode.Parse(File.ReadAllText(Path.Combine(Folder, "hybridserving-dashboard.json")))!;
        foreach (var panel in dashboard["panels"]!.AsArray())
            foreach (var target in panel!["targets"]!.AsArray())
                found.Add(($"panel '{panel["title"]}'", (string)target!["expr"]!));
        string? alert = null;
        foreach (var line in File.ReadLines(Path.Combine(Folder, "prometheus-rules.yaml")))
        {
            var trimmed = line.Trim();
            if (trimmed.StartsWith("- alert:", StringComparison.Ordinal)) alert = trimmed["- alert:".Length..].Trim();
            else if (trimmed.StartsWith("expr:", StringComparison.Ordinal)) found.Add(($"alert {alert}", trimmed["expr:".Length..].Trim()));
        }
        return found;
    }

    /// <summary>Our and vLLM's metric names in an expression (label values and functions are not names).</summary>
    public static IEnumerable<string> NamesIn(string expr) =>
        MetricName().Matches(LabelMatchers().Replace(expr, "{}")).Select(m => m.Value).Distinct();

    /// <summary>The sample names of a Prometheus text exposition (histograms as their _bucket/_sum/_count series).</summary>
    public static IEnumerable<string> SampleNames(string exposition) =>
        exposition.Split('\n')
            .Where(l => l.Length > 0 && l[0] != '#')
            .Select(l => l[..l.IndexOfAny(['{', ' '])]);

    public static string RenderOverlay()
    {
        using var kubectl = Process.Start(new ProcessStartInfo("kubectl", ["kustomize", Folder])
        {
            RedirectStandardOutput = true,
            RedirectStandardError = true,
        })!;
        var stdout = kubectl.StandardOutput.ReadToEndAsync();
        var stderr = kubectl.StandardError.ReadToEnd();
        kubectl.WaitForExit();
        if (kubectl.ExitCode != 0) throw new InvalidOperationException($"kubectl kustomize k8s/monitoring failed: {stderr}");
        return stdout.Result;
    }

    [GeneratedRegex(@"(hybridserving_[a-z0-9_]+|vllm:[a-z0-9_:]+)")]
    private static partial Regex MetricName();

    [GeneratedRegex(@"\{[^}]*\}")]
    private static partial Regex LabelMatchers();
}
