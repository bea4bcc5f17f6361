//! lvslab-capture: per-hop capture, pcap/pcapng output and the packet-path normalizer.
