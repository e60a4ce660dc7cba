using System.Net;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests.Demand;

public sealed class DemandReportingTests
{
    private static readonly Dictionary<string, string?> FastReports = new()
    {
        ["Gateway:Demand:ReportInterval"] = "00:00:00.100",
        ["Gateway:RoutingTable:GatewayName"] = "gw-test",
        ["Gateway:Load:ScrapeInterval"] = "00:00:00",
    };

    private static long Reported(FakeControlPlane cp, string adapter) =>
        cp.DemandReports.SelectMany(r => r.Adapters).Where(a => a.Name == adapter).Sum(a => a.Requests);

    [Fact]
    public async Task Requests_per_adapter_reach_the_ControlPlane_as_counts_since_the_last_report()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "hot", "cold");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)],
            Adapter("hot", endpoints: ("e1", Residency.Loaded)), Adapter("cold", endpoints: ("e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url, FastReports);
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 7; i++)
        {
            using var r = await gw.Client.SendAsync(gw.Chat("hot"));
            Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        }
        using (var r = await gw.Client.SendAsync(gw.Chat("cold"))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        using (var r = await gw.Client.SendAsync(gw.Chat(Base))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);

        await WaitUntil(() => Reported(cp, "hot") == 7 && Reported(cp, "cold") == 1);
        // Counts are deltas: later reports carry nothing more, and the base model is not an adapter.
        await Task.Delay(300);
        Assert.Equal(7, Reported(cp, "hot"));
        Assert.Equal(1, Reported(cp, "cold"));
        Assert.All(cp.DemandReports, r =>
        {
            Assert.Equal("gw-test", r.Gateway);
            Assert.True(r.WindowSeconds > 0);
            Assert.NotEmpty(r.Adapters);
            Assert.DoesNotContain(r.Adapters, a => a.Name == Base);
        });
    }

    [Fact]
    public async Task A_ControlPlane_refusing_reports_does_not_affect_requests()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "hot");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("hot", endpoints: ("e1", Residency.Loaded))));
        cp.FailDemandReports = true;
        await using var gw = await GatewayHost.StartAsync(cp.Url, FastReports);
        await gw.WaitForTableAsync(1);

        using (var r = await gw.Client.SendAsync(gw.Chat("hot"))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await WaitUntil(() => !cp.DemandReports.IsEmpty);
        using (var r = await gw.Client.SendAsync(gw.Chat("hot"))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        // The refused report is dropped, not re-sent: the next one carries only the new request.
        await WaitUntil(() => cp.DemandReports.Count >= 2);
        Assert.Equal(2, Reported(cp, "hot"));
    }

    [Fact]
    public async Task Zero_interval_turns_reporting_off()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "hot");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("hot", endpoints: ("e1", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>(FastReports) { ["Gateway:Demand:ReportInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using (var r = await gw.Client.SendAsync(gw.Chat("hot"))) Assert.Equal(HttpStatusCode.OK, r.StatusCode);
        await Task.Delay(300);
        Assert.Empty(cp.DemandReports);
    }

    private static async Task WaitUntil(Func<bool> condition)
    {
        var until = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < until, "timed out waiting for demand reports");
            await Task.Delay(20);
        }
    }
}
