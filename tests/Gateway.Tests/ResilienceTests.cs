using System.Net;
using System.Text.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Health;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Tests.Hosts;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

/// <summary>Retries, passive health and live-load spill-over with real sockets.</summary>
public sealed class ResilienceTests
{
    private static Uri DeadUrl() => new($"http://127.0.0.1:{Ports.GetFree()}/");

    [Fact]
    public async Task A_connection_failure_is_retried_on_another_engine_and_the_dead_engine_is_ejected()
    {
        await using var live = await FakeEngine.StartAsync("b-live", "sql");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a-dead", DeadUrl()), Engine("b-live", live.Url)],
            Adapter("sql", endpoints: [("a-dead", Residency.Loaded), ("b-live", Residency.Loaded)])));
        // Round robin in name order sends the first request to a-dead; scraping off, so only the
        // failed forward (not the active probe) can find out that a-dead is gone.
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Picking:Policy"] = "round-robin",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 4; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("sql", stream: i % 2 == 1));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("b-live", response.Headers.GetValues("x-hybridserving-engine").Single());
            await response.Content.ReadAsStringAsync();
        }
        Assert.Equal(4, live.Received.Count);
        Assert.True(gw.Services.GetRequiredService<PassiveHealth>().IsEjected("a-dead"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task A_404_from_an_engine_that_no_longer_has_the_adapter_is_retried_on_another_holder(bool stream)
    {
        // The table still shows "sql" on a: placement moved it to b, and a already unloaded it.
        await using var a = await FakeEngine.StartAsync("a");
        await using var b = await FakeEngine.StartAsync("b", "sql");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url), Engine("b", b.Url)],
            Adapter("sql", endpoints: [("a", Residency.Loaded), ("b", Residency.Loaded)])));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Picking:Policy"] = "round-robin",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 2; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("sql", stream));
            var text = await response.Content.ReadAsStringAsync();
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("b", response.Headers.GetValues("x-hybridserving-engine").Single());
            Assert.DoesNotContain("does not exist", text);
        }
        // Round robin may send the second request to a as well (the table has not changed): retried again.
        Assert.InRange(a.Received.Count, 1, 2);
        Assert.Equal(2, b.Received.Count);
        // A 404 is an answer, not a failure: the engine stays in service.
        Assert.False(gw.Services.GetRequiredService<PassiveHealth>().IsEjected("a"));
    }

    [Fact]
    public async Task A_404_from_the_only_holder_reaches_the_client_as_the_engine_sent_it()
    {
        await using var a = await FakeEngine.StartAsync("a");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url)], Adapter("sql", endpoints: [("a", Residency.Loaded)])));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("sql"));
        Assert.Equal(HttpStatusCode.NotFound, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Equal("The model `sql` does not exist.", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Single(a.Received);
    }

    [Fact]
    public async Task An_engine_dying_mid_stream_gives_the_client_an_error_event_and_the_next_request_goes_elsewhere()
    {
        await using var a = await FakeEngine.StartAsync("a");
        await using var b = await FakeEngine.StartAsync("b");
        a.AbortAfterFirstToken = true;
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url), Engine("b", b.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Picking:Policy"] = "round-robin",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);

        using (var broken = await gw.Client.SendAsync(gw.Chat(Base, stream: true)))
        {
            Assert.Equal("a", broken.Headers.GetValues("x-hybridserving-engine").Single());
            var text = await broken.Content.ReadAsStringAsync();
            Assert.Contains("tok0", text);
            var errorEvent = text.Split("\n\n").Single(e => e.Contains("\"error\""));
            using var json = JsonDocument.Parse(errorEvent["data: ".Length..]);
            Assert.Contains("stopped in the middle", json.RootElement.GetProperty("error").GetProperty("message").GetString());
            Assert.EndsWith("data: [DONE]\n\n", text);
        }
        Assert.True(gw.Services.GetRequiredService<PassiveHealth>().IsEjected("a"));
        for (var i = 0; i < 3; i++)
        {
            using var next = await gw.Client.SendAsync(gw.Chat(Base, stream: true));
            Assert.Equal("b", next.Headers.GetValues("x-hybridserving-engine").Single());
            Assert.EndsWith("data: [DONE]\n\n", await next.Content.ReadAsStringAsync());
        }
    }

    [Fact]
    public async Task A_non_streaming_response_cut_short_is_aborted_not_passed_off_as_complete()
    {
        await using var a = await FakeEngine.StartAsync("a");
        a.AbortAfterFirstToken = true;
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat(Base), HttpCompletionOption.ResponseHeadersRead);
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        await Assert.ThrowsAnyAsync<Exception>(() => response.Content.ReadAsStringAsync());
    }

    [Fact]
    public async Task An_engine_failing_before_its_first_byte_gives_an_OpenAI_502()
    {
        await using var a = await FakeEngine.StartAsync("a");
        a.Fail = (-1, null); // FakeEngine aborts the connection without answering
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat(Base));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("failed before answering", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.Single(a.Received); // no other engine to retry on
        Assert.True(gw.Services.GetRequiredService<PassiveHealth>().IsEjected("a"));
    }

    [Theory]
    [InlineData(false)]
    [InlineData(true)]
    public async Task An_engine_dropping_the_request_before_answering_is_retried_on_another_holder(bool stream)
    {
        // a takes the request and aborts the connection without a byte (what a killed engine does).
        await using var a = await FakeEngine.StartAsync("a", "sql");
        await using var b = await FakeEngine.StartAsync("b", "sql");
        a.Fail = (-1, null);
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url), Engine("b", b.Url)],
            Adapter("sql", endpoints: [("a", Residency.Loaded), ("b", Residency.Loaded)])));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?>
        {
            ["Gateway:Picking:Policy"] = "round-robin",
            ["Gateway:Load:ScrapeInterval"] = "00:00:00",
        });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat("sql", stream));
        var text = await response.Content.ReadAsStringAsync();
        Assert.Equal(HttpStatusCode.OK, response.StatusCode);
        Assert.Equal("b", response.Headers.GetValues("x-hybridserving-engine").Single());
        Assert.DoesNotContain("\"error\"", text);
        Assert.Single(a.Received);
        Assert.Single(b.Received);
        Assert.True(gw.Services.GetRequiredService<PassiveHealth>().IsEjected("a"));
        Assert.Contains("reason=\"engine-dropped\"", await gw.Client.GetStringAsync("/metrics"), StringComparison.Ordinal);
    }

    [Fact]
    public async Task The_metrics_scrape_ejects_an_engine_that_refuses_connections_before_any_request()
    {
        await using var live = await FakeEngine.StartAsync("live");
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("dead", DeadUrl()), Engine("live", live.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        var health = gw.Services.GetRequiredService<PassiveHealth>();
        await Until(() => health.IsEjected("dead"));
        Assert.False(health.IsEjected("live"));
    }

    [Fact]
    public async Task When_every_engine_is_unreachable_the_client_gets_502_in_OpenAI_shape()
    {
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", DeadUrl()), Engine("b", DeadUrl())]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Load:ScrapeInterval"] = "00:00:00" });
        await gw.WaitForTableAsync(1);

        using var response = await gw.Client.SendAsync(gw.Chat(Base));
        Assert.Equal(HttpStatusCode.BadGateway, response.StatusCode);
        using var json = JsonDocument.Parse(await response.Content.ReadAsStringAsync());
        Assert.Contains("could not be reached", json.RootElement.GetProperty("error").GetProperty("message").GetString());
        Assert.NotNull(response.Headers.RetryAfter);

        // Both are ejected now: the next request fails fast with 503 instead of dialling again.
        using var next = await gw.Client.SendAsync(gw.Chat(Base));
        Assert.Equal(HttpStatusCode.ServiceUnavailable, next.StatusCode);
    }

    [Fact]
    public async Task An_engine_answering_503_with_retry_after_is_left_alone_for_that_long()
    {
        await using var a = await FakeEngine.StartAsync("a");
        await using var b = await FakeEngine.StartAsync("b");
        a.Fail = (503, 120);
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url), Engine("b", b.Url)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url, new Dictionary<string, string?> { ["Gateway:Picking:Policy"] = "round-robin" });
        await gw.WaitForTableAsync(1);

        using (var first = await gw.Client.SendAsync(gw.Chat(Base)))
            Assert.Equal(HttpStatusCode.ServiceUnavailable, first.StatusCode); // passed through, not retried: the engine answered
        for (var i = 0; i < 4; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat(Base));
            Assert.Equal("b", response.Headers.GetValues("x-hybridserving-engine").Single());
        }
        Assert.Single(a.Received);
    }

    [Fact]
    public async Task Scraped_load_moves_adapter_traffic_off_a_saturated_engine_and_back()
    {
        await using var a = await FakeEngine.StartAsync("a", "sql");
        await using var b = await FakeEngine.StartAsync("b", "sql");
        a.SetLoad(running: 4, waiting: 40, kv: 0.5, runningAdapters: "sql");
        b.SetLoad(running: 0, waiting: 0, kv: 0.1);
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("a", a.Url), Engine("b", b.Url)],
            Adapter("sql", endpoints: [("a", Residency.Loaded), ("b", Residency.Loaded)])));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        var board = gw.Services.GetRequiredService<EngineLoadBoard>();
        await Until(() => board.Scraped("a")?.Load.Waiting == 40 && board.Scraped("b") is not null);

        for (var i = 0; i < 6; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("sql"));
            Assert.Equal("b", response.Headers.GetValues("x-hybridserving-engine").Single());
        }

        // Load flips: the adapter's GPU engine is idle again and b is now the busy one.
        a.SetLoad(running: 1, waiting: 0, kv: 0.1, runningAdapters: "sql");
        b.SetLoad(running: 4, waiting: 30, kv: 0.8, runningAdapters: "x,y");
        await Until(() => board.Scraped("a")?.Load.Waiting == 0 && board.Scraped("b")?.Load.Waiting == 30);
        for (var i = 0; i < 6; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("sql"));
            Assert.Equal("a", response.Headers.GetValues("x-hybridserving-engine").Single());
        }
    }

    /// <summary>Waits for the real 50 ms scraper (wall-clock I/O, so no fake clock); bounded.</summary>
    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow + TimeSpan.FromSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 10 s");
            await Task.Delay(20);
        }
    }
}
