"""ROS 2 wire-compatible transport on cyclonedds: run the virtual camera, play a bag and echo topics without ROS."""
