using HybridServing.ControlPlane.Tests.Infrastructure;
using HybridServing.TestKit;
using Microsoft.Extensions.Options;

namespace HybridServing.ControlPlane.Tests;

public sealed class ConfigurationTests
{
    [Theory]
    [InlineData("ControlPlane:Engines:0:SidecarUrl", "not a url", "ControlPlane:Engines:0:SidecarUrl 'not a url' must be an absolute http://")]
    [InlineData("ControlPlane:Engines:1:Name", "engine-0", "ControlPlane:Engines:1:Name 'engine-0' is used by another engine.")]
    [InlineData("ControlPlane:Home", "Cloud", "ControlPlane:Home 'Cloud'")]
    [InlineData("ControlPlane:DemandWindow", "00:00:00", "ControlPlane:DemandWindow must be positive.")]
    [InlineData("ControlPlane:RatePerReplica", "0", "ControlPlane:RatePerReplica '0' must be a positive number")]
    [InlineData("ControlPlane:Overflow:GrantTtl", "00:00:00", "ControlPlane:Overflow:GrantTtl '00:00:00' must be positive.")]
    [InlineData("ControlPlane:Overflow:ExtraSlotsPerEngine", "-1", "ControlPlane:Overflow:ExtraSlotsPerEngine -1 must be >= 0")]
    public async Task Bad_configuration_stops_startup_naming_the_key(string key, string value, string expected)
    {
        using var dir = new TempDirectory("cfg");
        await using var a = new FakeSidecar("engine-0", "n0");
        await using var b = new FakeSidecar("engine-1", "n1");
        await a.StartAsync();
        await b.StartAsync();
        var e = await Assert.ThrowsAsync<OptionsValidationException>(() =>
            ControlPlaneHost.StartAsync(dir.Path, [a, b], extra: new Dictionary<string, string?> { [key] = value }));
        Assert.Contains(expected, e.Message);
    }
}
