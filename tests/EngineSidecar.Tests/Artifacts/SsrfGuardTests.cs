using System.Net;
using HybridServing.Contracts.Net;
using HybridServing.Contracts.Sidecar;
using HybridServing.EngineSidecar.Tests.Infrastructure;
using HybridServing.TestKit;

namespace HybridServing.EngineSidecar.Tests.Artifacts;

/// <summary>The SSRF guard: http(s) and Hub downloads never reach loopback, link-local or private addresses unless allowed.</summary>
public sealed class SsrfGuardTests
{
    [Theory]
    [InlineData("127.0.0.1", "loopback")]
    [InlineData("::1", "loopback")]
    [InlineData("169.254.169.254", "link-local")]
    [InlineData("fe80::1", "link-local")]
    [InlineData("fd00:ec2::254", "private")]
    [InlineData("10.1.2.3", "private")]
    [InlineData("172.20.0.1", "private")]
    [InlineData("192.168.1.1", "private")]
    [InlineData("100.64.0.1", "private")]
    [InlineData("0.0.0.0", "unspecified")]
    [InlineData("::", "unspecified")]
    [InlineData("224.0.0.1", "multicast")]
    [InlineData("ff02::1", "multicast")]
    [InlineData("::ffff:127.0.0.1", "loopback")]
    [InlineData("::ffff:169.254.169.254", "link-local")]
    public void Restricted_addresses_are_named(string address, string kind) =>
        Assert.Contains(kind, OutboundGuard.Restricted(IPAddress.Parse(address)));

    [Theory]
    [InlineData("8.8.8.8")]
    [InlineData("172.32.0.1")]
    [InlineData("2606:4700::1111")]
    public void Public_addresses_are_not(string address) => Assert.Null(OutboundGuard.Restricted(IPAddress.Parse(address)));

    [Fact]
    public void Allowed_hosts_ranges_and_trusted_endpoints_open_exactly_what_they_name()
    {
        var guard = new OutboundGuard(["10.0.0.0/8", "mirror.internal", "::1"], false, [new Uri("http://127.0.0.1:5000/")], "X");
        Assert.Null(guard.Refusal("10.9.8.7", 80, IPAddress.Parse("10.9.8.7")));
        Assert.NotNull(guard.Refusal("192.168.0.1", 80, IPAddress.Parse("192.168.0.1")));
        Assert.Null(guard.Refusal("mirror.internal", 443, IPAddress.Parse("192.168.0.9")));
        Assert.Null(guard.Refusal("::1", 443, IPAddress.IPv6Loopback));
        Assert.Null(guard.Refusal("127.0.0.1", 5000, IPAddress.Loopback));
        Assert.NotNull(guard.Refusal("127.0.0.1", 5001, IPAddress.Loopback)); // the trusted endpoint's port only
        Assert.Null(new OutboundGuard([], true, [], "X").Refusal("169.254.169.254", 80, IPAddress.Parse("169.254.169.254")));
        Assert.NotNull(OutboundGuard.CheckEntry("10.0.0.0/99"));
    }

    private static async Task<(SidecarHost Host, MockEngineHost Engine)> StartAsync(TempDirectory dir, Action<Dictionary<string, string?>> configure)
    {
        var engine = await MockEngineHost.StartAsync("--model", TestAdapters.TinyModel, "--enable-lora", "--max-loras", "4");
        var settings = SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache"));
        configure(settings);
        return (await SidecarHost.StartAsync(settings), engine);
    }

    [Fact]
    public async Task By_default_loopback_metadata_and_redirects_to_loopback_are_refused_permanently_and_say_how_to_allow()
    {
        using var dir = new TempDirectory("ssrf");
        var adapter = TestAdapters.Write(dir.Combine("src"), "a");
        await using var files = await ArtifastServerWith(adapter);
        // "localhost" is allowed by name (an operator's choice), but its redirect to 127.0.0.1 is checked again.
        files.Redirects["hop/adapter_config.json"] = new Uri(files.BaseUrl, "a/adapter_config.json");
        var (host, engine) = await StartAsync(dir, s =>
        {
            s.Remove("Sidecar:Sources:Http:AllowedHosts:0"); // the default guard
            s["Sidecar:Sources:Http:AllowedHosts:0"] = "localhost";
        });
        await using var _ = engine;
        await using var __ = host;

        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Adapters =
            {
                StateWaits.Spec("loop", new Uri(files.BaseUrl, "a").ToString()),
                StateWaits.Spec("meta", "http://169.254.169.254/latest/meta-data/iam"),
                StateWaits.Spec("six", $"http://[::1]:{files.BaseUrl.Port}/a"),
                StateWaits.Spec("hop", $"http://localhost:{files.BaseUrl.Port}/hop"),
            },
        });
        var state = await host.WaitForStateAsync(s => s.Adapters.All(a => a.Phase == AdapterPhase.Failed), TimeSpan.FromSeconds(15), "all refused");
        foreach (var a in state.Adapters)
        {
            Assert.Equal("AddressNotAllowed", a.Reason);
            Assert.Contains("Allow it with Sidecar:Sources:Http:AllowedHosts:N=", a.Message);
        }
        Assert.Contains("169.254.169.254 (link-local", state.Adapter("meta")!.Message);
        Assert.Contains("127.0.0.1:", state.Adapter("hop")!.Message);
        Assert.False(files.Hits.ContainsKey("a/adapter_config.json")); // nothing reached the server but the allowed hop
        Assert.Equal(1, files.Hits["hop/adapter_config.json"]);

        // Non-retryable: not tried again.
        await Task.Delay(2500);
        Assert.Equal(1, files.Hits["hop/adapter_config.json"]);
    }

    [Fact]
    public async Task The_allow_option_lets_a_loopback_source_load_and_the_configured_hub_is_trusted_but_not_its_private_redirects()
    {
        using var dir = new TempDirectory("ssrf2");
        var adapter = TestAdapters.Write(dir.Combine("src"), "a");
        await using var files = await ArtifastServerWith(adapter);
        await using var hub = await ArtifactServer.StartAsync();
        hub.AddAdapter("org/direct/resolve/main", adapter);
        hub.AddAdapter("org/cdn/resolve/main", adapter);
        hub.Redirects["org/cdn/resolve/main/adapter_model.safetensors"] = new Uri(files.BaseUrl, "a/adapter_model.safetensors");
        var (host, engine) = await StartAsync(dir, s =>
        {
            s.Remove("Sidecar:Sources:Http:AllowedHosts:0");
            s["Sidecar:Hub:Endpoint"] = hub.BaseUrl.ToString();
        });
        await using var _ = engine;
        await using var __ = host;
        await host.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest
        {
            Adapters = { StateWaits.Spec("direct", "hf://org/direct"), StateWaits.Spec("cdn", "hf://org/cdn") },
        });
        var state = await host.WaitForStateAsync(s => s.Adapter("direct")?.Phase == AdapterPhase.Loaded && s.Adapter("cdn")?.Phase == AdapterPhase.Failed,
            TimeSpan.FromSeconds(15), "hub trusted, its private redirect refused");
        Assert.Equal("AddressNotAllowed", state.Adapter("cdn")!.Reason);

        // The option named in the refusal allows it.
        await using var allowed = await SidecarHost.StartAsync(SidecarHost.FastSettings(engine.BaseUrl, dir.Combine("cache2")));
        await allowed.Client.EnsureAdaptersAsync(new EnsureAdaptersRequest { Adapters = { StateWaits.Spec("loop", new Uri(files.BaseUrl, "a").ToString()) } });
        await allowed.WaitForPhaseAsync("loop", AdapterPhase.Loaded, TimeSpan.FromSeconds(15));
    }

    private static async Task<ArtifactServer> ArtifastServerWith(string adapter)
    {
        var server = await ArtifactServer.StartAsync();
        server.AddAdapter("a", adapter);
        return server;
    }
}
