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
    public void Port_base_moves_every_port_by_its_fixed_offset_and_single_options_still_win()
    {
        var moved = AppHostOptions.Parse(["--port-base", "20000"]);
        Assert.Equal([20000, 20001, 20002, 20010, 20011, 20012, 20020, 20021, 20022, 20080, 20081, 20082, 20083, 30888, 30889, 30890],
            PortCheck.Uses(moved).Select(u => u.Port).Order());
        Assert.Contains("--ASPNETCORE_URLS=http://127.0.0.1:30888", moved.AspireArgs);
        Assert.Null(AppHostOptions.Parse([]).DashboardPort);
        var o = AppHostOptions.Parse(["--gateway-port", "9999", "--port-base", "20000"]);
        Assert.Equal((9999, 20081, 20000), (o.GatewayPort, o.ControlPlanePort, o.EnginePortBase));
        var e = Assert.Throws<AppHostOptionsException>(() => AppHostOptions.Parse(["--port-base", "65500"]));
        Assert.Equal("--port-base: '65500' is not a port base (1-54645: the highest port, the dashboard's OTLP/HTTP, is the base + 10890)", e.Message);
    }

    [Fact]
    public void The_help_text_lists_every_port_of_the_stack_with_its_offset()
    {
        foreach (var use in PortCheck.Uses(AppHostOptions.Parse([])))
            Assert.Contains(use.Port.ToString(), AppHostOptions.Usage);
        Assert.Contains("--port-base N", AppHostOptions.Usage);
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
            Assert.Equal($"port {engine1} (engine-1) is in use on 127.0.0.1: stop what holds it (e.g. an AppHost already running) or move every port with --port-base N (now 8000; e.g. --port-base 9000), this one alone with --engine-port-base",
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
