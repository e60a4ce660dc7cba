using System.Net;
using System.Net.Http.Json;
using HybridServing.Contracts.ControlPlane;
using HybridServing.Gateway.Load;
using HybridServing.Gateway.Tests.Hosts;
using HybridServing.TestKit;
using Microsoft.Extensions.DependencyInjection;
using static HybridServing.Gateway.Tests.Hosts.Tables;

namespace HybridServing.Gateway.Tests;

/// <summary>The gateway in front of real MockEngines: affinity with real adapters and real <c>/metrics</c>.</summary>
public sealed class MockEngineTests
{
    [Fact]
    public async Task Adapter_traffic_reaches_only_the_MockEngine_that_loaded_it_and_its_metrics_are_read()
    {
        using var dir = new TempDirectory("gw-mock");
        var path = TestAdapters.Write(dir.Path, "support-a");
        await using var a = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2");
        await using var b = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "2");
        using (var http = new HttpClient { BaseAddress = b.BaseUrl })
        {
            using var load = await http.PostAsJsonAsync("/v1/load_lora_adapter", new { lora_name = "support-a", lora_path = path });
            Assert.True(load.IsSuccessStatusCode, await load.Content.ReadAsStringAsync());
        }
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-a", a.BaseUrl), Engine("mock-b", b.BaseUrl)],
            Adapter("support-a", endpoints: ("mock-b", Residency.Loaded))));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);

        for (var i = 0; i < 8; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat("support-a", stream: i % 2 == 0));
            var text = await response.Content.ReadAsStringAsync();
            Assert.True(response.StatusCode == HttpStatusCode.OK, text);
            Assert.Equal("mock-b", response.Headers.GetValues("x-hybridserving-engine").Single());
            Assert.Contains("support-a", text);
        }

        var board = gw.Services.GetRequiredService<EngineLoadBoard>();
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (board.Scraped("mock-b")?.Load.MaxLoras != 2)
        {
            Assert.True(DateTime.UtcNow < deadline, "the MockEngine's lora_requests_info was never read");
            await Task.Delay(20);
        }
    }

    [Fact]
    public async Task A_stopped_engine_is_routed_around_and_used_again_once_it_is_back()
    {
        await using var a = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel);
        await using var b = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel);
        await using var cp = await FakeControlPlane.StartAsync(Table(1, [Engine("mock-a", a.BaseUrl), Engine("mock-b", b.BaseUrl)]));
        await using var gw = await GatewayHost.StartAsync(cp.Url);
        await gw.WaitForTableAsync(1);
        var health = gw.Services.GetRequiredService<HybridServing.Gateway.Health.PassiveHealth>();

        await a.StopAsync();
        await Until(() => health.IsEjected("mock-a"));
        for (var i = 0; i < 6; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat(Base));
            Assert.Equal(HttpStatusCode.OK, response.StatusCode);
            Assert.Equal("mock-b", response.Headers.GetValues("x-hybridserving-engine").Single());
        }

        await a.RestartAsync(); // same port, as a restarted pod behind the same address
        await Until(() => !health.IsEjected("mock-a"));
        var served = new HashSet<string>();
        for (var i = 0; i < 20; i++)
        {
            using var response = await gw.Client.SendAsync(gw.Chat(Base));
            served.Add(response.Headers.GetValues("x-hybridserving-engine").Single());
        }
        Assert.Contains("mock-a", served);
    }

    private static async Task Until(Func<bool> condition)
    {
        var deadline = DateTime.UtcNow.AddSeconds(10);
        while (!condition())
        {
            Assert.True(DateTime.UtcNow < deadline, "condition not reached within 10 s");
            await Task.Delay(20);
        }
    }
}
