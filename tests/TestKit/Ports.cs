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
}
