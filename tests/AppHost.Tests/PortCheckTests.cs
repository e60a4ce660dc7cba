using System.Net;
using System.Net.Sockets;
using HybridServing.TestKit;

namespace HybridServing.AppHost.Tests;

public sealed class PortCheckTests
{
    private static AppHostOptions OnFreePorts(int engines = 2)
    {
        var block = Ports.GetFreeBlock(14);
        return AppHostOptions.Parse([
            "--engines", engines.ToString(), "--engine-port-base", block.ToString(), "--sidecar-port-base", (block + 2).ToString(),
            "--gateway-port", Ports.GetFree().ToString(), "--controlplane-port", Ports.GetFree().ToString(),
            "--controlplane-grpc-port", Ports.GetFree().ToString(), "--autoscaler-port", Ports.GetFree().ToString()]);
    }

    [Fact]
    public void The_defaults_name_every_port_of_the_README_table_once()
    {
        var uses = PortCheck.Uses(AppHostOptions.Parse([]));
        Assert.Equal([8000, 8001, 8002, 8010, 8011, 8012, 8020, 8021, 8022, 8080, 8081, 8082, 8083], uses.Select(u => u.Port).Order());
        Assert.DoesNotContain(PortCheck.Uses(AppHostOptions.Parse(["--no-autoscaler"])), u => u.Resource == "autoscaler");
    }

    [Fact]
    public void Free_ports_pass()
    {
        Assert.Null(PortCheck.Problem(OnFreePorts()));
    }

    [Fact]
    public void A_taken_port_is_one_line_naming_it_its_resource_and_the_option_that_moves_it()
    {
        var options = OnFreePorts();
        var engine1 = options.EnginePortBase + 1;
        var holder = new TcpListener(IPAddress.Loopback, engine1);
        holder.Start();
        try
        {
            Assert.Equal($"port {engine1} (engine-1) is in use on 127.0.0.1: stop what holds it (e.g. an AppHost already running) or move it with --engine-port-base",
                PortCheck.Problem(options));
        }
        finally
        {
            holder.Stop();
        }
    }

    [Fact]
    public void Ports_given_twice_are_refused_before_any_is_probed()
    {
        var options = OnFreePorts() with { GatewayPort = 8081, ControlPlanePort = 8081 };
        Assert.Equal("port 8081 is given to both controlplane (HTTP) and gateway; move one with --gateway-port", PortCheck.Problem(options));
    }
}
