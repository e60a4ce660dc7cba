using System.Net;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Tests.Hosts;
using HybridServing.MockEngine;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests.ColdStarts;

/// <summary>The gateway in front of MockEngines in vLLM's sleep mode: sleeping engines get no inference; an all-asleep pool holds requests.</summary>
public sealed class AsleepPoolHoldTests
{
    private static readonly MockEngineHostOptions DevMode = new()
    {
        Environment = new Dictionary<string, string> { [MockEngineCommandLine.ServerDevModeVariable] = "1" },
    };

    private static Task<MockEngineHost> SleepModeEngine() =>
        MockEngineHost.StartAsync(DevMode, "--model", TestAdapters.TinyModel, "--mock-profile", "tiny", "--enable-sleep-mode");

    private static async Task Post(MockEngineHost engine, string path)
    {
        using var http = new HttpClient { BaseAddress = engine.BaseUrl };
        using var response = await http.PostAsync(path, null);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
    }

    private static async Task UntilScraped(GatewayHost gw, string engine, bool sleeping)
    {
        var board = gw.Services.GetRequiredService<EngineLoadBoard>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (board.Scraped(engine)?.Load.Sleeping != sleeping)
        {
            Assert.True(DateTime.UtcNow < deadline, $"{engine} never read as sleeping={sleeping}");
            await Task.Delay(10);
        }
    }

    [Fact]
    public async Task A_sleeping_engine_is_not_sent_inference()
    {
        await using var a = await SleepModeEngine();
        await using var b = await SleepModeEngine();
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-a", a.BaseUrl), Engine("mock-b", b.BaseUrl)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        await Post(b, "sleep");
        await UntilScraped(gw, "mock-b", sleeping: true);
        for (var i = 0; i < 10; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat(Base));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("mock-a", response.Headers.GetValues("x-hybridserving-engine").Single());
        }
    }

    [Fact]
    public async Task An_engine_that_fell_asleep_before_the_gateway_saw_it_is_retried_elsewhere_not_lost()
    {
        await using var a = await SleepModeEngine();
        await using var b = await SleepModeEngine();
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-a", a.BaseUrl), Engine("mock-b", b.BaseUrl)]));
        // No scraping: the gateway never learns from /metrics that b sleeps, as in the gap before a scrape.
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);
        await Post(b, "sleep");
        for (var i = 0; i < 10; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat(Base));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("mock-a", response.Headers.GetValues("x-hybridserving-engine").Single());
        }
        Assert.Contains("reason=\"engine-unavailable\"", await gw.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task An_all_asleep_pool_holds_the_request_signals_it_and_serves_it_once_an_engine_wakes()
    {
        await using var a = await SleepModeEngine();
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-a", a.BaseUrl)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        await Post(a, "sleep");
        await UntilScraped(gw, "mock-a", sleeping: true);

        var held = gw.Client.SendAsync(gw.Chat(Base));
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!(await gw.Client.GetStringAsync("/metrics")).Contains("hybridserving_gateway_held_requests 1", StringComparison.Ordinal))
        {
            Assert.True(DateTime.UtcNow < deadline, "held_requests never showed the held request");
            await Task.Delay(20);
        }
        Assert.False(held.IsCompleted);

        await Post(a, "wake_up");
        using var response = await held;
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("mock-a", response.Headers.GetValues("x-hybridserving-engine").Single());
        Assert.Contains("hybridserving_gateway_held_requests 0", await gw.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_hold_is_bounded_then_503_with_retry_after()
    {
        await using var a = await SleepModeEngine();
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-a", a.BaseUrl)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:ColdStart:Timeout"] = "00:00:00.300", ["Gateway:ColdStart:RetryAfterSeconds"] = "7",
        });
        await gw.WaitForTableAsync(1);
        await Post(a, "sleep");
        await UntilScraped(gw, "mock-a", sleeping: true);

        using var response = await gw.Client.SendAsync(gw.Chat(Base));
        var body = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.ServiceUnavailable, response.StatusCode);
        Assert.Equal(TimeSpan.FromSeconds(7), response.Headers.RetryAfter?.Delta);
        Assert.Contains("Every engine serving `test/tiny` is asleep and none woke within 0.3 s; retry shortly.", body, StringComparison.Ordinal);
        Assert.Equal(0, a.Inspector.Snapshot().RequestsServedByModel.Values.Sum());
    }
}
