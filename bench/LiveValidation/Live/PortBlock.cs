using System.Net;
using System.Net.Sockets;

namespace HybridServing.LiveValidation.Live;

/// <summary>
/// A run of consecutive free loopback ports: the AppHost's topology numbers engines and sidecars
/// from a base port, so the stack needs blocks rather than single free ports. The block is taken
/// below Linux's ephemeral range (32768 and up), where outgoing connections would compete for it.
/// </summary>
internal static class PortBlock
{
    private const int LowestPort = 20_000;
    private const int HighestPort = 32_000;

    public static int Find(int count)
    {
        var random = new Random();
        for (var attempt = 0; attempt < 200; attempt++)
        {
            var start = random.Next(LowestPort, HighestPort - count);
            if (Enumerable.Range(start, count).All(IsFree)) return start;
        }
        throw new InvalidOperationException($"No {count} consecutive free ports on 127.0.0.1 between {LowestPort} and {HighestPort}.");
    }

    private static bool IsFree(int port)
    {
        try
        {
            using var listener = new TcpListener(IPAddress.Loopback, port);
            listener.Start();
            listener.Stop();
            return true;
        }
        catch (SocketException)
        {
            return false;
        }
    }
}
