using System.Diagnostics;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Observability;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

public sealed class ObservabilityTests
{
    [Fact]
    public async Task Metrics_and_spans_carry_model_adapter_tenant_engine_and_decision()
    {
        var spans = new List<Activity>();
        using var listener = new ActivityListener
        {
            ShouldListenTo = s => s.Name == GatewayTelemetry.Name,
            Sample = (ref ActivityCreationOptions<ActivityContext> _) => ActivitySamplingResult.AllDataAndRecorded,
            ActivityStopped = a => { lock (spans) spans.Add(a); },
        };
        ActivitySource.AddActivityListener(listener);

        await using var engine = await FakeEngine.StartAsync("obs-e1", "obs-lora");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("obs-e1", engine.Url)], Adapter("obs-lora", endpoints: ("obs-e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        using (var ok = await gw.Client.SendAsync(gw.Chat("obs-lora", stream: true))) await ok.Content.ReadAsStringAsync();
        using (var missing = await gw.Client.SendAsync(gw.Chat("obs-missing"))) { }

        var metrics = await gw.Client.GetStringAsync("/metrics");
        var requestLines = metrics.Split('\n').Where(l => l.StartsWith("hybridserving_gateway_requests", StringComparison.Ordinal)).ToList();
        Assert.Contains(requestLines, l => l.Contains("adapter=\"obs-lora\"") && l.Contains("model=\"obs-lora\"") && l.Contains("status=\"200\"") && l.Contains("tenant=\"anonymous\""));
        Assert.Contains(requestLines, l => l.Contains("model=\"unknown\"") && l.Contains("status=\"404\""));
        Assert.DoesNotContain("obs-missing", metrics); // raw client input never becomes a label
        Assert.Contains("hybridserving_gateway_ttft", metrics);
        Assert.Contains("hybridserving_gateway_routing_decisions", metrics);
        Assert.Matches("hybridserving_gateway_routing_decisions\\{[^}]*reason=\"(free-slot|loaded)\"", metrics);
        // Every overflow outcome has a series from the start (the dashboard's overflow panel and rate() need one).
        foreach (var outcome in new[] { "served", "refused", "timed-out", "cooling-down" })
            Assert.Matches($"hybridserving_gateway_overflows\\{{[^}}]*outcome=\"{outcome}\"", metrics);

        Activity span;
        lock (spans) span = spans.Single(s => (string?)s.GetTagItem("hybridserving.adapter") == "obs-lora");
        Assert.Equal("obs-e1", span.GetTagItem("hybridserving.engine"));
        Assert.NotNull(span.GetTagItem("hybridserving.decision"));
        Assert.Equal("hybrid", span.GetTagItem("hybridserving.policy"));
    }
}
