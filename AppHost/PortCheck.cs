using System.Net;
using System.Net.Sockets;

namespace HybridServing.AppHost;

/// <summary>
/// Every fixed port the local stack listens on, named by the resource that takes it and the option that moves
/// it, checked before anything starts: a taken port is one line naming it and the way out, not a resource that
/// dies later with a stack trace.
/// </summary>
internal static class PortCheck
{
    public sealed record PortUse(int Port, string Resource, string Option);

    public static IReadOnlyList<PortUse> Uses(AppHostOptions o)
    {
        var uses = new List<PortUse>();
        for (var i = 0; i < o.Engines; i++)
        {
            uses.Add(new(o.EnginePortBase + i, $"engine-{i}", "--engine-port-base"));
            uses.Add(new(o.SidecarPortBase + i, $"engine-{i}-sidecar (HTTP)", "--sidecar-port-base"));
            uses.Add(new(o.SidecarPortBase + 10 + i, $"engine-{i}-sidecar (gRPC)", "--sidecar-port-base"));
        }
        uses.Add(new(o.ControlPlanePort, "controlplane (HTTP)", "--controlplane-port"));
        uses.Add(new(o.ControlPlaneGrpcPort, "controlplane (gRPC)", "--controlplane-grpc-port"));
        uses.Add(new(o.GatewayPort, "gateway", "--gateway-port"));
        if (o.AutoscalerMinEngines is not null) uses.Add(new(o.AutoscalerPort, "autoscaler", "--autoscaler-port"));
        if (o.DashboardPort is { } d)
        {
            uses.Add(new(d, "Aspire dashboard", "--port-base"));
            uses.Add(new(d + 1, "Aspire dashboard (OTLP/gRPC)", "--port-base"));
            uses.Add(new(d + 2, "Aspire dashboard (OTLP/HTTP)", "--port-base"));
        }
        return uses;
    }

    private static int Suggest(int portBase) => portBase + 1000 + AppHostOptions.PortOffsets.Highest < 65536 ? portBase + 1000 : 1000;

    /// <summary>The first problem with the ports, as the one line to print, or null when every port is free and used once.</summary>
    public static string? Problem(AppHostOptions o)
    {
        var uses = Uses(o);
        foreach (var clash in uses.GroupBy(u => u.Port).Where(g => g.Count() > 1))
        {
            var (a, b) = (clash.First(), clash.Skip(1).First());
            return $"port {clash.Key} is given to both {a.Resource} and {b.Resource}; move one with {b.Option}";
        }
        var address = o.Host == "localhost" ? IPAddress.Loopback : IPAddress.Parse(o.Host);
        foreach (var use in uses)
        {
            try
            {
                var listener = new TcpListener(address, use.Port);
                listener.Start();
                listener.Stop();
            }
            catch (SocketException)
            {
                return $"port {use.Port} ({use.Resource}) is in use on {o.Host}: stop what holds it (e.g. an AppHost already running) or move every port with --port-base N (now {o.PortBase}; e.g. --port-base {Suggest(o.PortBase)}), this one alone with {use.Option}";
            }
        }
        return null;
    }
}
