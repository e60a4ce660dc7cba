using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Configuration;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.Options;

namespace HybridServing.EngineSidecar.Tests.Api;

/// <summary>In a pod the engine is at 127.0.0.1 for the sidecar only: the reported URL must be the pod's.</summary>
public sealed class AdvertisedEngineUrlTests
{
    [Theory]
    [InlineData("http://127.0.0.1:8000", null, "10.4.0.7", "http://10.4.0.7:8000/")]
    [InlineData("http://localhost:8000/", null, "10.4.0.7", "http://10.4.0.7:8000/")]
    [InlineData("http://0.0.0.0:8000", null, "10.4.0.7", "http://10.4.0.7:8000/")]
    [InlineData("http://[::1]:8000", null, "fd00::7", "http://[fd00::7]:8000/")]
    [InlineData("http://127.0.0.1:8000", "http://vllm-0.engines:8000", "10.4.0.7", "http://vllm-0.engines:8000/")]
    [InlineData("http://10.9.9.9:8000", null, "10.4.0.7", "http://10.9.9.9:8000/")] // not loopback: already reachable
    [InlineData("http://127.0.0.1:8000", null, null, "http://127.0.0.1:8000/")]     // the local home: one loopback for all
    public void Advertises_the_pod_address_for_a_loopback_engine(string engineUrl, string? advertised, string? podIp, string expected) =>
        Assert.Equal(expected, AdvertisedEngine.Url(new SidecarOptions { AdvertisedEngineUrl = advertised, PodIp = podIp }, new Uri(engineUrl)).ToString());

    [Fact]
    public async Task Reports_the_pod_ip_from_POD_IP_with_the_engine_port()
    {
        using var dir = new TempDirectory("sc-adv");
        await using var engine = await FakeEngine.StartAsync();
        Assert.True(engine.BaseUrl.IsLoopback);
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"));
        settings["POD_IP"] = "10.4.0.7";
        await using var host = await SidecarHost.StartAsync(settings);
        var info = await host.Client.GetInfoAsync(new GetInfoRequest());
        Assert.Equal($"http://10.4.0.7:{engine.BaseUrl.Port}/", info.EngineUrl);
        // The sidecar itself still calls the engine on loopback.
        await host.WaitForStateAsync(s => s.Info.BaseModels.Count > 0, what: "engine reached");
    }

    [Theory]
    [InlineData("Sidecar:PodIp", "not-an-ip", "Sidecar:PodIp (or POD_IP) 'not-an-ip' is not an IP address")]
    [InlineData("Sidecar:AdvertisedEngineUrl", "vllm:8000", "Sidecar:AdvertisedEngineUrl 'vllm:8000' is not an absolute http(s) URL")]
    public async Task Refuses_a_wrong_pod_ip_or_advertised_url_naming_the_key(string key, string value, string expected)
    {
        using var dir = new TempDirectory("sc-adv");
        var settings = SidecarHost.FastSettings(new Uri("http://127.0.0.1:1"), dir.Combine("cache"));
        settings[key] = value;
        var ex = await Assert.ThrowsAsync<OptionsValidationException>(() => SidecarHost.StartAsync(settings));
        Assert.Contains(expected, ex.Message);
    }
}
