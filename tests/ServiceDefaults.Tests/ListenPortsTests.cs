using System.Net;
using System.Net.Sockets;
using HybridServing.TestKit;
using Microsoft.Extensions.Configuration;

namespace HybridServing.ServiceDefaults.Tests;

public sealed class ListenPortsTests
{
    private static IConfiguration Config(params (string Key, string Value)[] pairs) =>
        new ConfigurationBuilder().AddInMemoryCollection(pairs.Select(p => new KeyValuePair<string, string?>(p.Key, p.Value))).Build();

    [Fact]
    public void The_configured_endpoints_are_read_with_the_setting_that_moves_each()
    {
        Assert.Equal(
            [new ListenPorts.Listen("127.0.0.1", 8010, "Kestrel__Endpoints__Http__Url"), new ListenPorts.Listen("127.0.0.1", 8020, "Kestrel__Endpoints__Grpc__Url")],
            ListenPorts.FromConfiguration(Config(("Kestrel:Endpoints:Http:Url", "http://127.0.0.1:8010"), ("Kestrel:Endpoints:Grpc:Url", "http://127.0.0.1:8020"), ("urls", "http://x:1")))
                .OrderBy(l => l.Port));
        Assert.Equal([new ListenPorts.Listen("0.0.0.0", 9000, "ASPNETCORE_URLS"), new ListenPorts.Listen("localhost", 9001, "ASPNETCORE_URLS")],
            ListenPorts.FromConfiguration(Config(("urls", "http://+:9000;http://localhost:9001"))));
        // Nothing configured: ASP.NET Core's own default, where a standalone service (the sidecar's file mode) listens.
        Assert.Equal(5000, Assert.Single(ListenPorts.FromConfiguration(Config())).Port);
    }

    [Fact]
    public void A_held_port_is_one_line_naming_it_and_the_setting()
    {
        var port = Ports.GetFree();
        Assert.Null(ListenPorts.Problem([new("127.0.0.1", port, "--port N")]));
        using var holder = new TcpListener(IPAddress.Loopback, port);
        holder.Start();
        var problem = ListenPorts.Problem([new("127.0.0.1", port, "--port N")]);
        Assert.NotNull(problem);
        Assert.StartsWith($"port {port} is in use on 127.0.0.1: stop what holds it", problem);
        Assert.EndsWith("or choose another with --port N", problem);
        Assert.DoesNotContain('\n', problem);
        // All interfaces collide with a loopback listener too.
        Assert.StartsWith($"port {port} is in use on 0.0.0.0", ListenPorts.Problem([new("0.0.0.0", port, "--port N")]));
    }
}
