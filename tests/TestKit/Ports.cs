using System.Net;
using System.Net.Sockets;

namespace HybridServing.TestKit;

/// <summary>Free loopback ports for hosts that need to know their port before they start (two Kestrel endpoints).</summary>
public static class Ports
{
    private static readonly HashSet<int> Handed = [];

    public static int GetFree()
    {
        lock (Handed)
        {
            while (true)
            {
                using var listener = new TcpListener(IPAddress.Loopback, 0);
                listener.Start();
                var port = ((IPEndPoint)listener.LocalEndpoint).Port;
                listener.Stop();
                // Never hand the same port out twice in one test run.
                if (Handed.Add(port)) return port;
            }
        }
    }

    /// <summary>
    /// <paramref name="count"/> consecutive free ports, for components whose ports are numbered
    /// from a base (the AppHost's engines and sidecars).
    /// </summary>
    public static int GetFreeBlock(int count)
    {
        lock (Handed)
        {
            for (var attempt = 0; attempt < 200; attempt++)
            {
                var start = Random.Shared.Next(20_000, 60_000 - count);
                var ports = Enumerable.Range(start, count).ToArray();
                if (ports.Any(Handed.Contains) || !ports.All(IsFree)) continue;
                foreach (var p in ports) Handed.Add(p);
                return start;
            }
            throw new InvalidOperationException($"No block of {count} free ports found.");
        }
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
