using System.Net;
using System.Text.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Tests.Hosts;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

public sealed class ColdStartTests
{
    [Fact]
    public async Task Concurrent_requests_for_a_cold_adapter_share_one_RequestLoad_and_are_served_once_it_loads()
    {
        await using var engine = await FakeEngine.StartAsync("e1", "cold");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("cold")));
        var release = new TaskCompletionSource(TaskCreationOptions.RunContinuationsAsynchronously);
        cp.OnRequestLoad = async request =>
        {
            Assert.Equal("cold", request.Name);
            cp.Publish(Table(2, [Engine("e1", engine.Url)], Adapter("cold", endpoints: ("e1", Residency.Loading))));
            // Loaded only once the test has seen every waiter arrive.
            _ = release.Task.ContinueWith(_ => cp.Publish(Table(3, [Engine("e1", engine.Url)], Adapter("cold", endpoints: ("e1", Residency.Loaded)))), TaskScheduler.Default);
            await Task.Yield();
            return new RequestLoadResponse { Accepted = true, Reason = "Scheduled" };
        };
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        var requests = Enumerable.Range(0, 12).Select(i => gw.Client.SendAsync(gw.Chat("cold", stream: i % 3 == 0))).ToList();
        await gw.WaitForTableAsync(2);
        Assert.All(requests, r => Assert.False(r.IsCompleted));
        release.SetResult();
        var responses = await Task.WhenAll(requests);

        Assert.All(responses, r => Assert.Equal(HttpStatusCode.OK, r.StatusCode));
        Assert.All(responses, r => Assert.Equal("e1", r.Headers.GetValues("x-hybridserving-engine").Single()));
        Assert.Equal(1, cp.RequestLoads);
        Assert.Equal(12, engine.Received.Count);
        foreach (var r in responses) r.Dispose();
    }

    [Fact]
    public async Task A_load_that_does_not_finish_in_time_answers_503_with_retry_after()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("slow")));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:ColdStart:Timeout"] = "00:00:00.300",
            ["Gateway:ColdStart:RetryAfterSeconds"] = "7",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("slow"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter!.Delta);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("was not ready within 0.3 s", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Equal("ServiceUnavailableError", json.RootElement.GetProperty("error").GetProperty("type").GetString());
        Assert.Equal(1, cp.RequestLoads);
        Assert.Empty(engine.Received); // never forwarded to an engine that does not hold it
    }

    [Fact]
    public async Task A_refused_load_answers_503_with_the_control_planes_reason()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("big")));
        cp.OnRequestLoad = _ => Task.FromResult(new RequestLoadResponse { Accepted = false, Reason = "NoCapacity", Message = "no compatible engine has a free slot" });
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("big"));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.NotNull(response.Headers.RetryAfter);
        Assert.Contains("NoCapacity: no compatible engine has a free slot", await response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_adapter_removed_while_waiting_answers_404()
    {
        await using var engine = await FakeEngine.StartAsync("e1");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("e1", engine.Url)], Adapter("doomed")));
        cp.OnRequestLoad = _ =>
        {
            cp.Publish(Table(2, [Engine("e1", engine.Url)]));
            return Task.FromResult(new RequestLoadResponse { Accepted = true });
        };
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("doomed"));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
    }
}
